"""correlate layer of sipflow (see ../shared/STYLE.md)."""
