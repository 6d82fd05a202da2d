"""aef: embedding fields from satellite image time series.

Data flow: STAC API -> COG assets -> UTM 10 m cube (Zarr) -> normalised video
tensors -> model -> Zarr embedding cube -> linear probe -> GeoTIFF map.
"""

__version__ = "0.1.0"
