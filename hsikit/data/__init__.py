"""Reference data and simulation: sensor band definitions, spectral resampling, synthetic scenes."""
