"""The configurator's own pages (beside the Django admin), at /configurator/, login required."""
