//! FastViT-T8 (placeholder)
