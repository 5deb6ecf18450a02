"""The layer registry (专题图层) and the sharing policy every way out asks."""
