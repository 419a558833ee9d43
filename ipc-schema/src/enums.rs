//! Closed enums with explicit, never-changing wire values.

macro_rules! wire_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $variant:ident = $value:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $variant = $value),+ }

        impl $name {
            /// Every value, in wire order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire value.
            pub fn to_wire(self) -> u8 { self as u8 }

            /// Parses a wire value; `None` for a value this version does not know.
            pub fn from_wire(v: u8) -> Option<Self> {
                match v { $($value => Some($name::$variant),)+ _ => None }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_u8(self.to_wire())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <u64 as ::serde::Deserialize>::deserialize(d)?;
                u8::try_from(v).ok().and_then($name::from_wire).ok_or_else(|| {
                    <D::Error as ::serde::de::Error>::custom(format!(concat!("unknown ", stringify!($name), " value {}"), v))
                })
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    /// Which processors Core ML may use. Wire values equal `MLComputeUnits` raw values.
    ComputeUnits {
        /// CPU only.
        CpuOnly = 0,
        /// CPU and GPU.
        CpuAndGpu = 1,
        /// CPU, GPU and Neural Engine.
        All = 2,
        /// CPU and Neural Engine (macOS 13+).
        CpuAndNe = 3,
    }
}

wire_enum! {
    /// Kind of compiled Core ML model.
    Backend {
        /// ML Program (`model.mil`).
        MlProgram = 1,
        /// Legacy neural network.
        NeuralNetwork = 2,
    }
}

wire_enum! {
    /// A compute device in a compute plan.
    Device {
        /// CPU.
        Cpu = 1,
        /// GPU.
        Gpu = 2,
        /// Apple Neural Engine.
        NeuralEngine = 3,
    }
}
