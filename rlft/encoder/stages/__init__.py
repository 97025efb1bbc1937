"""The encoder stages, one file each: ``classify``, ``mlm``, ``ssl_image``."""
