//! RPKI for the failover's preflight: will the networks that enforce route origin validation
//! accept the subnets from the site that is to announce them?
//!
//! - [`rov`]: RFC 6811 §2 route origin validation of (prefix, origin AS) against VRPs; pure.
//! - [`rtr`]: the VRPs from an RPKI validator over RTR (RFC 8210, RFC 6810), through NLnet
//!   Labs' `rpki` crate, every wait bounded.
//!
//! Never does: decide what a state means for a plan ([`crate::controller::rpki`]), or speak
//! BGP.

pub mod rov;
pub mod rtr;
