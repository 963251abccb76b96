"""The ledex trainer: collect verified explain-and-fix data, SFT, RL, evaluate, export (`ledex-train`)."""
