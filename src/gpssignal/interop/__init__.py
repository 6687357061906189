"""Interoperability with Eclipse SUMO (optional: ``pip install 'gpssignal[sumo]'``)."""
