"""NeuralFactors (Gopal 2024)."""
