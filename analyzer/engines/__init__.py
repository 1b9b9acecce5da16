"""Other ways to run the same analysis as :func:`analyzer.analysis.analyze`.

``table``  SIP messages as Arrow tables (one row per message) and back, the form in which
           messages travel between machines.
``timeline`` several captures decoded apart, numbered and ordered as the local engine's one
           time line (frames merged as ``mergecap -w`` merges them).
``dask``   the analysis spread over a Dask distributed cluster: captures decoded on workers,
           messages shuffled by Call-ID, calls correlated and diagnosed per partition.
"""
