"""The message catalogue (English and Japanese) and the wording of job stages."""
