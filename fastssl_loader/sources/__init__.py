"""Dataset sources for conversion: one module per source layout.

Each module turns one layout into what :func:`fastssl_loader.write_dataset` takes (an indexable of
``(image, label)``) and offers ``convert_<source>(src, dst, **write_options) -> WriteReport``, which stores
a ``description`` naming the source in the file's schema. The ``fastssl convert`` command has one
sub-command per source.
"""
