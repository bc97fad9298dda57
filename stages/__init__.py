"""The three stages of the MNIST MLP-weights pipeline and the small modules they share."""
