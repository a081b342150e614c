"""Statistics over stored rows: bootstrap intervals, paired ranking, the KL distribution,
the noise floor and which rows are comparable."""
