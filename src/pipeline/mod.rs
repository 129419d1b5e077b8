//! The micro-batch stream processor (Spark Streaming DStream style: map, flatMap, filter,
//! reduceByKey, countByValue, window, state) consuming a channel, with outputs committed before
//! the channel transaction is.
//!
//! Not built yet: no issue has asked for it so far. The take-transaction API it will sit on
//! ([`crate::channel::Channel::take_batch`] → commit only after the outputs are durable) is in
//! place.
