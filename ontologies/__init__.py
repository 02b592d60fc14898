"""Ontology registries (CellType/CL, Tissue/UBERON, ...), their importers and hierarchy queries."""
