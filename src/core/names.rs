//! One source for the stable names of the crate's enums: [`named!`] declares an enum
//! with each variant's name written once, and derives from it both the serde form
//! (`#[serde(rename = ..)]`) and `as_str` (**G9**).

/// Declares an enum whose variants are written `Variant => "name"` (or
/// `Variant(Payload) => "name"`, `Variant = code => "name"`): the name is the
/// variant's serde form (its tag, for a variant with a payload) and what `as_str`
/// returns. The enum must derive `Serialize`/`Deserialize` and be `Copy`.
macro_rules! named {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $(
                $(#[$vmeta:meta])*
                $variant:ident $(($payload:ty))? $(= $code:literal)? => $str:literal
            ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $(
                $(#[$vmeta])*
                #[serde(rename = $str)]
                $variant $(($payload))? $(= $code)?,
            )*
        }

        impl $name {
            /// The stable snake-case name: the serde form (for a variant with a
            /// payload, its tag), written once where the variant is declared (**G9**).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant { .. } => $str, )*
                }
            }
        }
    };
}

pub(crate) use named;
