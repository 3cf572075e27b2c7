"""Tiny models built from configs with fixed random weights, and the shipped real ones: the catalogue modules whose
``TINY``/``SHIPPED`` mappings name them (listed in ``nodes.models.CATALOGUE_MODULES``)."""
