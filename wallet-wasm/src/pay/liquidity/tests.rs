//! Tests of the offer checks.
