//! ImageNet-1k class names and top-k over logits.
//!
//! ```
//! use coreml_candle::labels::{imagenet, top_k};
//!
//! assert_eq!(imagenet().len(), 1000);
//! assert_eq!(imagenet()[281], "tabby");
//! let mut logits = vec![0.0f32; 1000];
//! logits[285] = 5.0;
//! let top = top_k(&logits, 1);
//! assert_eq!(top[0].0, 285);
//! assert!(top[0].1 > 0.1);
//! ```
//!
//! The names are torchvision's `_IMAGENET_CATEGORIES` (assets/imagenet_labels.txt).

use std::sync::OnceLock;

const LABELS: &str = include_str!("../assets/imagenet_labels.txt");

/// The 1000 ImageNet class names, by class index.
pub fn imagenet() -> &'static [&'static str] {
    static CELL: OnceLock<Vec<&'static str>> = OnceLock::new();
    CELL.get_or_init(|| LABELS.lines().filter(|l| !l.is_empty()).collect())
}

/// ImageNet class indices of domestic cats (tabby, tiger, Persian, Siamese, Egyptian).
pub const CAT_CLASSES: std::ops::RangeInclusive<usize> = 281..=285;

/// The `k` most probable classes as `(index, softmax probability)`, best first.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| exp[b].total_cmp(&exp[a]));
    idx.into_iter().take(k).map(|i| (i, exp[i] / sum)).collect()
}
