//! Model implementations (part B: vision models on the custom ops).
pub mod fastvit;
pub mod resnet;
pub mod vision_assets;
