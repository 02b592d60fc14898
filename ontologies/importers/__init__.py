"""Importers of ontology terms and genes: the CELLxGENE guide, OBO/OWL files, GENCODE lists."""
