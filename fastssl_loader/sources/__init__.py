"""Dataset sources: read a dataset layout into the indexable ``(image, label)`` samples ``write_dataset`` takes."""
