"""All disk and network access: STAC, COG reads, Zarr stores, GeoTIFFs, local services."""
