"""``sipflow live``: live analysis from an interface (a tcpdump child) or HEP capture agents.

    cli        the click command (options, signals)
    run        the run: inputs started, the main loop, an orderly end on every path
    engine     the sans-I/O core: Decoder + CallStore + diagnose, fed frame by frame
    tcpdump    the tcpdump child and its pcap stream (read by analyzer.capture.source)
    hep        the HEP listener (UDP, TCP framing, size and rate limits, auth key)
    events     what the input threads queue for the main loop
    alerts     scanner, REGISTER flood, 401/403 storm, peer 200 -> 503, failure spike
    window     the rolling window of finished reports (KPIs, recent failures)
    output     JSON lines, one-line summaries, --alert-cmd
    view       the rich terminal view
    metrics    Prometheus text format and its HTTP server
    stats      the run's numbers as metrics and as the closing summary
    reportdir  --report DIR: calls.csv / calls.json rewritten periodically
    pcapwriter --write-pcap DIR: rotating pcap files

See docs/live.md.
"""
