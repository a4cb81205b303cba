"""eyesim: energy estimates of CNNs on row-stationary spatial accelerators."""
