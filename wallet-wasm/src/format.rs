//! Amounts as people read them.

use bitcoin::Amount;

/// `amount` in sats with thousands separators: `"10,000 sats"`, `"1 sat"`.
pub fn sats(amount: Amount) -> String {
    let n = amount.to_sat();
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 5);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out.push_str(if n == 1 { " sat" } else { " sats" });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_thousands() {
        let s = |n| sats(Amount::from_sat(n));
        assert_eq!(s(0), "0 sats");
        assert_eq!(s(1), "1 sat");
        assert_eq!(s(999), "999 sats");
        assert_eq!(s(1_000), "1,000 sats");
        assert_eq!(s(443_941), "443,941 sats");
        assert_eq!(s(2_100_000_000_000_000), "2,100,000,000,000,000 sats");
    }
}
