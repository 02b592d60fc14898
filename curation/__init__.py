"""Release curation: mirror CELLxGENE Census releases into a registry instance."""
