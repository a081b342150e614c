"""DataFrame -> plotly figure: the trade-off charts, their style, the offline report."""
