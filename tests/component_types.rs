//! One registry of component type names (`sluicegate::component`): the `flume.conf` validator
//! and the components that also build from a bare `Context` (channel selectors, interceptors,
//! sink processors) accept exactly the same `type` spellings, and refuse the others with the
//! same message. Before the registry, those components lowercased and re-parsed the value, so
//! e.g. a lowercased Java class name passed them while the validator refused it.

use std::sync::Arc;
use std::time::Duration;

use sluicegate::agent::{
    load_str, ComponentType, InterceptorType, SelectorType, SinkProcessorType,
};
use sluicegate::channel::memory::{MemoryChannel, MemoryChannelConfig};
use sluicegate::channel::Channel;
use sluicegate::config::Context;
use sluicegate::sink::null::NullSink;
use sluicegate::sink::processor::sink_processor_from_context;
use sluicegate::sink::Sink;
use sluicegate::source::interceptor::interceptor_from_context;
use sluicegate::source::selector::ChannelSelector;

/// Every spelling worth trying for a type kind: each type's short name in three cases, its
/// class name exactly and lowercased, Flume names sluicegate does not implement, and nonsense.
fn spellings<T: ComponentType>() -> Vec<String> {
    let mut out = Vec::new();
    for t in T::ALL {
        out.push(t.short_name().to_string());
        out.push(t.short_name().to_ascii_uppercase());
        out.push(format!(
            "{}{}",
            t.short_name()[..1].to_ascii_uppercase(),
            &t.short_name()[1..]
        ));
        out.push(t.class_name().to_string());
        out.push(t.class_name().to_ascii_lowercase());
    }
    out.extend(T::FLUME_UNSUPPORTED.iter().map(|s| s.to_string()));
    out.push("nope".into());
    out
}

fn channel(name: &str) -> Arc<dyn Channel> {
    Arc::new(MemoryChannel::new(
        name,
        MemoryChannelConfig {
            capacity: 10,
            transaction_capacity: 10,
            byte_capacity: None,
            keep_alive: Duration::from_millis(1),
        },
    ))
}

fn null_sink(name: &str) -> Box<dyn Sink> {
    Box::new(NullSink::from_context(name, &Context::new(name), channel("c1")).unwrap())
}

/// What the validator says about `a1` with the given extra lines: `Ok` or its first message.
fn validate(extra: &str) -> Result<(), String> {
    let text = format!(
        "a1.sources = r1\na1.channels = c1\na1.sinks = k1 k2\n\
         a1.sources.r1.type = seq\na1.sources.r1.channels = c1\n\
         a1.channels.c1.type = memory\n\
         a1.sinks.k1.type = null\na1.sinks.k1.channel = c1\n\
         a1.sinks.k2.type = null\na1.sinks.k2.channel = c1\n{extra}"
    );
    load_str(&text, None, "a1")
        .map(|_| ())
        .map_err(|e| e.errors[0].message.clone())
}

#[test]
fn selectors_accept_what_the_validator_accepts() {
    let mut checked = 0;
    for v in spellings::<SelectorType>() {
        let expected = SelectorType::from_config(&v);
        let by_validator = validate(&format!(
            "a1.sources.r1.selector.type = {v}\na1.sources.r1.selector.default = c1\n"
        ));
        let ctx = Context::from_pairs(
            "a1.sources.r1",
            [("selector.type", v.as_str()), ("selector.default", "c1")],
        );
        let by_component = ChannelSelector::from_context(&ctx, vec![channel("c1")]);
        match expected {
            Some(_) => {
                assert_eq!(by_validator, Ok(()), "validator on '{v}'");
                assert!(by_component.is_ok(), "selector on '{v}': {by_component:?}");
            }
            None => {
                let msg = SelectorType::unsupported_message(&v);
                assert_eq!(by_validator, Err(msg.clone()), "validator on '{v}'");
                let e = by_component.unwrap_err();
                assert_eq!(e.key, "a1.sources.r1.selector.type");
                assert_eq!(e.message, msg);
            }
        }
        checked += 1;
    }
    assert!(checked >= 12, "{checked}");
}

#[test]
fn interceptors_accept_what_the_validator_accepts() {
    for v in spellings::<InterceptorType>() {
        let expected = InterceptorType::from_config(&v);
        let by_validator = validate(&format!(
            "a1.sources.r1.interceptors = i1\na1.sources.r1.interceptors.i1.type = {v}\n\
             a1.sources.r1.interceptors.i1.regex = x\n"
        ));
        let ctx = Context::from_pairs(
            "a1.sources.r1.interceptors.i1",
            [("type", v.as_str()), ("regex", "x")],
        );
        let by_component = interceptor_from_context("i1", &ctx);
        match expected {
            Some(_) => {
                assert_eq!(by_validator, Ok(()), "validator on '{v}'");
                assert!(by_component.is_ok(), "interceptor on '{v}'");
            }
            None => {
                let msg = InterceptorType::unsupported_message(&v);
                assert_eq!(by_validator, Err(msg.clone()), "validator on '{v}'");
                let e = by_component.err().unwrap();
                assert_eq!(e.key, "a1.sources.r1.interceptors.i1.type");
                assert_eq!(e.message, msg);
            }
        }
    }
}

#[test]
fn sink_processors_accept_what_the_validator_accepts() {
    for v in spellings::<SinkProcessorType>() {
        let expected = SinkProcessorType::from_config(&v);
        // The default processor takes one sink, the others two.
        let members: &[&str] = if expected == Some(SinkProcessorType::Default) {
            &["k1"]
        } else {
            &["k1", "k2"]
        };
        let by_validator = validate(&format!(
            "a1.sinkgroups = g1\na1.sinkgroups.g1.sinks = {}\n\
             a1.sinkgroups.g1.processor.type = {v}\n",
            members.join(" ")
        ));
        let ctx = Context::from_pairs("a1.sinkgroups.g1", [("processor.type", v.as_str())]);
        let sinks = members.iter().map(|m| null_sink(m)).collect();
        let by_component = sink_processor_from_context("g1", &ctx, sinks);
        match expected {
            Some(_) => {
                assert_eq!(by_validator, Ok(()), "validator on '{v}'");
                assert!(by_component.is_ok(), "processor on '{v}'");
            }
            None => {
                let msg = SinkProcessorType::unsupported_message(&v);
                assert_eq!(by_validator, Err(msg.clone()), "validator on '{v}'");
                let e = by_component.err().unwrap();
                assert_eq!(e.key, "a1.sinkgroups.g1.processor.type");
                assert_eq!(e.message, msg);
            }
        }
    }
}

#[test]
fn a_lowercased_class_name_is_refused_everywhere() {
    // The case that used to differ: accepted by the components, refused by the validator.
    let v = "org.apache.flume.channel.multiplexingchannelselector";
    let ctx = Context::from_pairs("a1.sources.r1", [("selector.type", v)]);
    let e = ChannelSelector::from_context(&ctx, vec![channel("c1")]).unwrap_err();
    assert!(
        e.message
            .contains("did you mean 'org.apache.flume.channel.MultiplexingChannelSelector'"),
        "{}",
        e.message
    );
    assert!(validate(&format!("a1.sources.r1.selector.type = {v}\n")).is_err());
}
