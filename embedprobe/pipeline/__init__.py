"""The jobs, composed from the layers below: extract a corpus into a cache, probe caches, measure
domain gaps, profile acoustics."""
