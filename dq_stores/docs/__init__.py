"""The static data-docs site: ``build_site(stores, out)`` writes self-contained HTML pages (inline
CSS and SVG, no script, nothing fetched at view time) for every tenant, environment, dataset and
job run the stores hold, incrementally. ``site`` reads the stores and writes files, ``render``
turns values into pages, ``charts`` draws the SVG. No Dagster import anywhere in it.
"""

from dq_stores.docs.site import MANIFEST as MANIFEST
from dq_stores.docs.site import BuildResult as BuildResult
from dq_stores.docs.site import build_site as build_site
from dq_stores.docs.site import run_page_path as run_page_path

__all__ = ["MANIFEST", "BuildResult", "build_site", "run_page_path"]
