"""capture layer of sipflow (see ../shared/STYLE.md)."""
