"""Where versions' bytes live: content-addressed blobs, uploaded archives, downloads, materialized folders."""
