//! JSON numbers as JSON Schema reads them: `5.0` is an integer there, so an API that
//! publishes integer fields must accept it. One rule, used by the strict JSON reader and by
//! [`FlexDuration`](crate::duration::FlexDuration).

/// The whole number a float stands for, when it has no fractional part and fits an `i64`
/// or a `u64`; `None` for `0.5`, infinities, NaN and values beyond both ranges.
pub fn integral(v: f64) -> Option<i128> {
    // 2^64 and -2^63 are exact in f64; a whole float in [-2^63, 2^64) converts exactly.
    const TOP: f64 = 18_446_744_073_709_551_616.0;
    const BOTTOM: f64 = -9_223_372_036_854_775_808.0;
    if v.is_finite() && v.fract() == 0.0 && (BOTTOM..TOP).contains(&v) {
        Some(v as i128)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        assert_eq!(integral(0.0), Some(0));
        assert_eq!(integral(-0.0), Some(0));
        assert_eq!(integral(5.0), Some(5));
        assert_eq!(integral(-1000.0), Some(-1000));
        assert_eq!(integral(0.5), None);
        assert_eq!(integral(f64::NAN), None);
        assert_eq!(integral(f64::INFINITY), None);
        assert_eq!(integral(1e20), None);
        assert_eq!(
            integral(18_446_744_073_709_549_568.0),
            Some(18_446_744_073_709_549_568)
        );
    }
}
