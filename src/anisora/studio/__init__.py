"""anisora studio: the motion-comic web app, its job queue and workers (issue 7)."""
