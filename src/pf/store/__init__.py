"""Durable state: content-addressed blobs (and, later, build records and logs).

Imports config and errors only.
"""

from pf.store.blobs import BlobStore, digest_bytes, digest_file

__all__ = ["BlobStore", "digest_bytes", "digest_file"]
