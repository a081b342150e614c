"""What runs a built model (transformers, llama.cpp), what its weights take as held,
and what one token costs it."""
