"""Demo Census releases: plan, cells, h5ad files, SOMA store."""
