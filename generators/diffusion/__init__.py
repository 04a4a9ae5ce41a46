"""Factor-conditioned diffusion transformer (Gao, He & He 2025)."""
