//! Measures of representation, bias and label agreement.

pub mod agreement;
pub mod outcome;
pub mod phases;
pub mod representation;
