"""Data: image sources, resizing, random-scale sampling and the LightningDataModule."""
