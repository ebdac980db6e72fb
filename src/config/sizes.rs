//! Fly's machine size presets (`[[vm]] size`, `lakefly scale vm`): CPUs and memory each
//! stands for.

/// Name, CPU count, memory in MiB.
const SIZES: &[(&str, u32, u64)] = &[
    ("shared-cpu-1x", 1, 256),
    ("shared-cpu-2x", 2, 512),
    ("shared-cpu-4x", 4, 1024),
    ("shared-cpu-8x", 8, 2048),
    ("performance-1x", 1, 2048),
    ("performance-2x", 2, 4096),
    ("performance-4x", 4, 8192),
    ("performance-8x", 8, 16384),
    ("performance-16x", 16, 32768),
    ("a10", 8, 32768),
    ("a100-40gb", 8, 32768),
    ("a100-80gb", 8, 32768),
    ("l40s", 8, 32768),
];

/// The CPUs and memory (MiB) of size `name`, if it is one.
pub fn preset(name: &str) -> Option<(u32, u64)> {
    SIZES
        .iter()
        .find(|(size, ..)| *size == name)
        .map(|&(_, cpus, mb)| (cpus, mb))
}

/// Every size's name, for a message listing them.
pub fn names() -> String {
    SIZES
        .iter()
        .map(|(name, ..)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}
