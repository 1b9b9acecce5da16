"""Other ways to run the same analysis as :func:`analyzer.analysis.analyze`.

``table``  SIP messages as Arrow tables (one row per message) and back, the form in which
           messages travel between machines.
``dask``   the analysis spread over a Dask distributed cluster: captures decoded on workers,
           messages shuffled by Call-ID, calls correlated and diagnosed per partition.
"""
