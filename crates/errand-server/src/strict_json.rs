//! A deserializer wrapper that holds request bodies to the shapes the API documents.
//!
//! serde's derived structs also read a JSON array by field position (`["k","q"]` as
//! `{"kind":"k","queue":"q"}`), and its integers refuse `5.0`, which JSON Schema (and so the
//! OpenAPI document) calls an integer. [`Strict`] wraps a deserializer, and every value
//! nested in it, so that a struct is read from an object only and an integer field takes a
//! whole float. It streams like the deserializer it wraps: nothing is buffered or copied,
//! and `serde_path_to_error` around it still names the field that was wrong.

use serde::de::{self, DeserializeSeed, Deserializer, Unexpected, Visitor};

/// A deserializer whose structs are objects only and whose integers accept whole floats.
pub(crate) struct Strict<D>(pub D);

/// What the caller asked the wrapped deserializer for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// Anything: values pass through unchanged (a payload's `1.0` stays a float).
    Any,
    /// An integer: a whole float is read as the integer it stands for.
    Integer,
    /// A struct: only an object will do.
    Struct,
}

/// A visitor that rewraps every nested deserializer and applies [`Want`].
struct StrictVisitor<V> {
    inner: V,
    want: Want,
}

fn wrap<V>(inner: V, want: Want) -> StrictVisitor<V> {
    StrictVisitor { inner, want }
}

macro_rules! forward_as {
    ($want:expr; $($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
                self.0.$method(wrap(visitor, $want))
            }
        )*
    };
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Strict<D> {
    type Error = D::Error;

    forward_as!(Want::Integer;
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128);
    forward_as!(Want::Any;
        deserialize_any deserialize_bool deserialize_f32 deserialize_f64 deserialize_char
        deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf
        deserialize_option deserialize_unit deserialize_seq deserialize_map
        deserialize_identifier deserialize_ignored_any);

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_unit_struct(name, wrap(visitor, Want::Any))
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_newtype_struct(name, wrap(visitor, Want::Any))
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, wrap(visitor, Want::Any))
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_tuple_struct(name, len, wrap(visitor, Want::Any))
    }

    /// A struct is read as a map, so an array in its place is refused.
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(wrap(visitor, Want::Struct))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0
            .deserialize_enum(name, variants, wrap(visitor, Want::Any))
    }

    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

macro_rules! forward_visit {
    ($($method:ident: $ty:ty)*) => {
        $(
            fn $method<E: de::Error>(self, v: $ty) -> Result<Self::Value, E> {
                self.inner.$method(v)
            }
        )*
    };
}

impl<'de, V: Visitor<'de>> Visitor<'de> for StrictVisitor<V> {
    type Value = V::Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.expecting(f)
    }

    forward_visit!(
        visit_bool: bool visit_i8: i8 visit_i16: i16 visit_i32: i32 visit_i64: i64
        visit_i128: i128 visit_u8: u8 visit_u16: u16 visit_u32: u32 visit_u64: u64
        visit_u128: u128 visit_f32: f32 visit_char: char visit_str: &str
        visit_borrowed_str: &'de str visit_string: String visit_bytes: &[u8]
        visit_borrowed_bytes: &'de [u8] visit_byte_buf: Vec<u8>
    );

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
        if self.want == Want::Integer {
            match errand_core::number::integral(v) {
                Some(n) => match u64::try_from(n) {
                    Ok(n) => return self.inner.visit_u64(n),
                    Err(_) => {
                        if let Ok(n) = i64::try_from(n) {
                            return self.inner.visit_i64(n);
                        }
                    }
                },
                None => return Err(E::invalid_type(Unexpected::Float(v), &self)),
            }
        }
        self.inner.visit_f64(v)
    }

    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_none()
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_some(Strict(d))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        self.inner.visit_unit()
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.inner.visit_newtype_struct(Strict(d))
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
        if self.want == Want::Struct {
            return Err(de::Error::invalid_type(Unexpected::Seq, &self));
        }
        self.inner.visit_seq(StrictSeq(seq))
    }

    fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_map(StrictMap(map))
    }

    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        self.inner.visit_enum(StrictEnum(data))
    }
}

/// A seed whose deserializer is wrapped.
struct StrictSeed<S>(S);

impl<'de, S: DeserializeSeed<'de>> DeserializeSeed<'de> for StrictSeed<S> {
    type Value = S::Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(Strict(d))
    }
}

/// The elements of an array, each wrapped.
struct StrictSeq<A>(A);

impl<'de, A: de::SeqAccess<'de>> de::SeqAccess<'de> for StrictSeq<A> {
    type Error = A::Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Self::Error> {
        self.0.next_element_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// The keys and values of an object, each wrapped.
struct StrictMap<A>(A);

impl<'de, A: de::MapAccess<'de>> de::MapAccess<'de> for StrictMap<A> {
    type Error = A::Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        self.0.next_key_seed(StrictSeed(seed))
    }

    fn next_value_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.next_value_seed(StrictSeed(seed))
    }

    fn size_hint(&self) -> Option<usize> {
        self.0.size_hint()
    }
}

/// An enum's variant, wrapped so its contents are too.
struct StrictEnum<A>(A);

impl<'de, A: de::EnumAccess<'de>> de::EnumAccess<'de> for StrictEnum<A> {
    type Error = A::Error;
    type Variant = StrictEnum<A::Variant>;

    fn variant_seed<S: DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Self::Variant), Self::Error> {
        self.0
            .variant_seed(StrictSeed(seed))
            .map(|(value, variant)| (value, StrictEnum(variant)))
    }
}

impl<'de, A: de::VariantAccess<'de>> de::VariantAccess<'de> for StrictEnum<A> {
    type Error = A::Error;

    fn unit_variant(self) -> Result<(), Self::Error> {
        self.0.unit_variant()
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(
        self,
        seed: T,
    ) -> Result<T::Value, Self::Error> {
        self.0.newtype_variant_seed(StrictSeed(seed))
    }

    fn tuple_variant<V: Visitor<'de>>(
        self,
        len: usize,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.tuple_variant(len, wrap(visitor, Want::Any))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        self.0.struct_variant(fields, wrap(visitor, Want::Struct))
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Outer {
        name: String,
        #[serde(default)]
        priority: Option<i32>,
        #[serde(default)]
        items: Vec<Inner>,
        #[serde(default)]
        payload: Option<serde_json::Value>,
    }

    fn read<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        serde_path_to_error::deserialize(Strict(&mut de))
            .map_err(|e| format!("{}: {}", e.path(), e.inner()))
    }

    #[test]
    fn an_object_is_read_as_before() {
        let v: Outer =
            read(r#"{"name":"a","priority":-3,"items":[{"n":1}],"payload":[1,2.5,{"x":1.0}]}"#)
                .unwrap();
        assert_eq!(v.name, "a");
        assert_eq!(v.priority, Some(-3));
        assert_eq!(v.items, vec![Inner { n: 1 }]);
        assert_eq!(v.payload, Some(serde_json::json!([1, 2.5, {"x": 1.0}])));
        assert!(
            v.payload.unwrap()[2]["x"].is_f64(),
            "a payload's float stays a float"
        );
    }

    #[test]
    fn an_array_in_place_of_an_object_is_refused_at_the_top_and_nested() {
        let top = read::<Outer>(r#"["a", 5]"#).unwrap_err();
        assert!(top.contains("invalid type: sequence"), "{top}");
        let nested = read::<Outer>(r#"{"name":"a","items":[{"n":1},[2]]}"#).unwrap_err();
        assert!(
            nested.starts_with("items[1]: invalid type: sequence"),
            "{nested}"
        );
    }

    #[test]
    fn integers_take_whole_floats_and_refuse_fractions() {
        let v: Outer = read(r#"{"name":"a","priority":5.0,"items":[{"n":0.0}]}"#).unwrap();
        assert_eq!(v.priority, Some(5));
        assert_eq!(v.items, vec![Inner { n: 0 }]);
        let neg: Outer = read(r#"{"name":"a","priority":-7.0}"#).unwrap();
        assert_eq!(neg.priority, Some(-7));
        let half = read::<Outer>(r#"{"name":"a","items":[{"n":0.5}]}"#).unwrap_err();
        assert!(
            half.starts_with("items[0].n: invalid type: floating point `0.5`"),
            "{half}"
        );
        let big = read::<Outer>(r#"{"name":"a","priority":1e12}"#).unwrap_err();
        assert!(big.starts_with("priority: invalid value"), "{big}");
    }

    #[test]
    fn a_large_whole_float_is_not_rounded_into_a_fraction() {
        // Without correctly rounded float parsing this reads as 1970300953673671.25 and is
        // refused as a fraction, though JSON Schema calls it an integer. (Past 2^53 a float
        // cannot hold every integer: `9007199254740993.0` is read as the nearest float.)
        let v: u64 = read("1970300953673671.0").unwrap();
        assert_eq!(v, 1_970_300_953_673_671);
        let top: u64 = read("18446744073709549568.0").unwrap();
        assert_eq!(top, 18_446_744_073_709_549_568);
    }
}
