//! The micro-batch stream processor (DStream style). Not yet built.
