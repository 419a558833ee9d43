//! ResNet-50 (placeholder)
