//! The six ROS parameter services of a node (`list_parameters`, `get_parameters`,
//! `get_parameter_types`, `describe_parameters`, `set_parameters`,
//! `set_parameters_atomically`), served from the parameters the node started with.
//!
//! r2r's own handler panics when a reply cannot be sent. Fast DDS returns `RCL_RET_TIMEOUT`
//! from `send_response` when the client's response reader has not been discovered yet. That
//! happens on a loaded machine, and it killed the node. Here a reply that cannot be sent is
//! logged and counted, as rclcpp does, and the node keeps running. The client's call times out
//! and it can ask again.
//!
//! The nodes read their parameters once, at start. The parameters are read-only: a set is
//! refused with a reason (`describe_parameters` says `read_only`), rather than being accepted
//! and then not applied.

use std::cell::Cell;
use std::rc::Rc;

use futures::future::LocalBoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::rcl_interfaces::msg::{
    ListParametersResult, ParameterDescriptor, ParameterType, ParameterValue as ParameterValueMsg,
    SetParametersResult,
};
use r2r::rcl_interfaces::srv::{
    DescribeParameters, GetParameterTypes, GetParameters, ListParameters, SetParameters,
    SetParametersAtomically,
};
use r2r::{Parameter, ParameterValue, QosProfile, WrappedServiceTypeSupport};

use super::ros_error;
use crate::NodeError;

/// A node's parameters, name → value and description, in declaration order.
pub type ParameterTable = Vec<(String, Parameter)>;

/// Why a set is refused.
pub const READ_ONLY_REASON: &str = "read-only: autodidact nodes read their parameters at start; restart the node with -p name:=value";

/// Creates the parameter services of `node` for `table` and returns the future that serves
/// them (spawn it on the node's executor) and the count of replies that could not be sent.
pub fn serve_parameters(
    node: &mut r2r::Node,
    table: ParameterTable,
) -> Result<(LocalBoxFuture<'static, ()>, Rc<Cell<u64>>), NodeError> {
    let name = node.name().map_err(ros_error)?;
    let table = Rc::new(table);
    let unsent = Rc::new(Cell::new(0u64));
    let mut services = Services {
        node,
        name: &name,
        unsent: &unsent,
        running: Vec::with_capacity(6),
    };
    let t = Rc::clone(&table);
    services.add::<ListParameters::Service>("list_parameters", move |request| {
        ListParameters::Response {
            result: list_parameters(&t, &request.prefixes, request.depth),
        }
    })?;
    let t = Rc::clone(&table);
    services.add::<GetParameters::Service>("get_parameters", move |request| {
        GetParameters::Response {
            values: per_name(&t, &request.names, value_message),
        }
    })?;
    let t = Rc::clone(&table);
    services.add::<GetParameterTypes::Service>("get_parameter_types", move |request| {
        GetParameterTypes::Response {
            types: per_name(&t, &request.names, type_code),
        }
    })?;
    services.add::<DescribeParameters::Service>("describe_parameters", move |request| {
        DescribeParameters::Response {
            descriptors: describe_parameters(&table, &request.names),
        }
    })?;
    services.add::<SetParameters::Service>("set_parameters", |request| {
        SetParameters::Response {
            results: request
                .parameters
                .iter()
                .map(|p| refusal(&p.name))
                .collect(),
        }
    })?;
    services.add::<SetParametersAtomically::Service>("set_parameters_atomically", |request| {
        let names: Vec<&str> = request.parameters.iter().map(|p| p.name.as_str()).collect();
        SetParametersAtomically::Response {
            result: refusal(&names.join(", ")),
        }
    })?;
    let serve = futures::future::join_all(services.running)
        .map(|_| ())
        .boxed_local();
    Ok((serve, unsent))
}

/// The services being created: each answers its requests from its closure; a reply the
/// middleware cannot send is logged and counted in `unsent`.
struct Services<'a> {
    node: &'a mut r2r::Node,
    name: &'a str,
    unsent: &'a Rc<Cell<u64>>,
    running: Vec<LocalBoxFuture<'static, ()>>,
}

impl Services<'_> {
    fn add<T>(
        &mut self,
        suffix: &'static str,
        answer: impl Fn(&T::Request) -> T::Response + 'static,
    ) -> Result<(), NodeError>
    where
        T: WrappedServiceTypeSupport + 'static,
    {
        let requests = self
            .node
            .create_service::<T>(&format!("{}/{suffix}", self.name), QosProfile::default())
            .map_err(ros_error)?;
        let unsent = Rc::clone(self.unsent);
        let serve = requests.for_each(move |request| {
            let response = answer(&request.message);
            if let Err(error) = request.respond(response) {
                unsent.set(unsent.get() + 1);
                tracing::warn!(
                    service = suffix,
                    %error,
                    unsent = unsent.get(),
                    "parameter reply not sent; the caller may ask again"
                );
            }
            futures::future::ready(())
        });
        self.running.push(serve.boxed_local());
        Ok(())
    }
}

/// `answer` for each of `names` (given `None` for a name the node does not have).
fn per_name<T>(
    table: &[(String, Parameter)],
    names: &[String],
    answer: fn(Option<&Parameter>) -> T,
) -> Vec<T> {
    names
        .iter()
        .map(|name| answer(lookup(table, name)))
        .collect()
}

fn lookup<'a>(table: &'a [(String, Parameter)], name: &str) -> Option<&'a Parameter> {
    table
        .iter()
        .find(|(declared, _)| declared == name)
        .map(|(_, parameter)| parameter)
}

/// `rcl_interfaces/srv/ListParameters` as rclcpp answers it: with no prefixes, every name with
/// fewer than `depth` separators (`.`); with prefixes, the names equal to one or below one
/// (again limited by `depth`, counting the separator after the prefix). `depth` 0 means
/// unlimited. `prefixes` of the result are the
/// distinct parents of the listed names.
pub fn list_parameters(
    table: &[(String, Parameter)],
    prefixes: &[String],
    depth: u64,
) -> ListParametersResult {
    const SEPARATOR: char = '.';
    let recursive = depth == ListParameters::Request::DEPTH_RECURSIVE as u64;
    let shallow_enough = |name: &str| recursive || (name.matches(SEPARATOR).count() as u64) < depth;
    let mut result = ListParametersResult {
        names: Vec::new(),
        prefixes: Vec::new(),
    };
    for (name, _) in table {
        let listed = if prefixes.is_empty() {
            shallow_enough(name)
        } else {
            prefixes.iter().any(|prefix| {
                // As rclcpp counts it: the separator after the prefix counts towards depth.
                name == prefix
                    || name
                        .strip_prefix(prefix.as_str())
                        .filter(|rest| rest.starts_with(SEPARATOR))
                        .is_some_and(shallow_enough)
            })
        };
        if !listed {
            continue;
        }
        result.names.push(name.clone());
        if let Some((parent, _)) = name.rsplit_once(SEPARATOR)
            && !result.prefixes.iter().any(|known| known == parent)
        {
            result.prefixes.push(parent.to_owned());
        }
    }
    result
}

/// `rcl_interfaces/srv/DescribeParameters`: type, description and `read_only` of each name;
/// an unknown name is described as not set.
pub fn describe_parameters(
    table: &[(String, Parameter)],
    names: &[String],
) -> Vec<ParameterDescriptor> {
    names
        .iter()
        .map(|name| {
            let parameter = lookup(table, name);
            ParameterDescriptor {
                name: name.clone(),
                type_: type_code(parameter),
                description: parameter.map_or_else(String::new, |p| p.description.to_owned()),
                read_only: parameter.is_some(),
                ..Default::default()
            }
        })
        .collect()
}

/// The refusal of a set of `name` (one parameter, or several named together).
pub fn refusal(name: &str) -> SetParametersResult {
    SetParametersResult {
        successful: false,
        reason: format!("{name}: {READ_ONLY_REASON}"),
    }
}

/// The `rcl_interfaces/msg/ParameterType` code of a parameter (not set when unknown).
pub fn type_code(parameter: Option<&Parameter>) -> u8 {
    match parameter.map(|p| &p.value) {
        None | Some(ParameterValue::NotSet) => ParameterType::PARAMETER_NOT_SET as u8,
        Some(ParameterValue::Bool(_)) => ParameterType::PARAMETER_BOOL as u8,
        Some(ParameterValue::Integer(_)) => ParameterType::PARAMETER_INTEGER as u8,
        Some(ParameterValue::Double(_)) => ParameterType::PARAMETER_DOUBLE as u8,
        Some(ParameterValue::String(_)) => ParameterType::PARAMETER_STRING as u8,
        Some(ParameterValue::ByteArray(_)) => ParameterType::PARAMETER_BYTE_ARRAY as u8,
        Some(ParameterValue::BoolArray(_)) => ParameterType::PARAMETER_BOOL_ARRAY as u8,
        Some(ParameterValue::IntegerArray(_)) => ParameterType::PARAMETER_INTEGER_ARRAY as u8,
        Some(ParameterValue::DoubleArray(_)) => ParameterType::PARAMETER_DOUBLE_ARRAY as u8,
        Some(ParameterValue::StringArray(_)) => ParameterType::PARAMETER_STRING_ARRAY as u8,
    }
}

/// A parameter's value as `rcl_interfaces/msg/ParameterValue` (not set when unknown).
pub fn value_message(parameter: Option<&Parameter>) -> ParameterValueMsg {
    let mut message = ParameterValueMsg {
        type_: type_code(parameter),
        ..Default::default()
    };
    match parameter.map(|p| &p.value) {
        None | Some(ParameterValue::NotSet) => {}
        Some(ParameterValue::Bool(value)) => message.bool_value = *value,
        Some(ParameterValue::Integer(value)) => message.integer_value = *value,
        Some(ParameterValue::Double(value)) => message.double_value = *value,
        Some(ParameterValue::String(value)) => message.string_value = value.clone(),
        Some(ParameterValue::ByteArray(value)) => message.byte_array_value = value.clone(),
        Some(ParameterValue::BoolArray(value)) => message.bool_array_value = value.clone(),
        Some(ParameterValue::IntegerArray(value)) => message.integer_array_value = value.clone(),
        Some(ParameterValue::DoubleArray(value)) => message.double_array_value = value.clone(),
        Some(ParameterValue::StringArray(value)) => message.string_array_value = value.clone(),
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> ParameterTable {
        let parameter = |value, description| Parameter { value, description };
        vec![
            (
                "seed".into(),
                parameter(ParameterValue::Integer(3), "Seed of everything"),
            ),
            (
                "use_sim_time".into(),
                parameter(ParameterValue::Bool(true), ""),
            ),
            (
                "viz.every".into(),
                parameter(ParameterValue::Double(0.5), "Seconds between frames"),
            ),
            (
                "viz.sink.path".into(),
                parameter(ParameterValue::String("a.rrd".into()), ""),
            ),
        ]
    }

    fn names(result: &ListParametersResult) -> Vec<&str> {
        result.names.iter().map(String::as_str).collect()
    }

    #[test]
    fn list_without_prefixes_gives_every_name_within_depth() {
        let table = table();
        let all = list_parameters(&table, &[], 0);
        assert_eq!(
            names(&all),
            ["seed", "use_sim_time", "viz.every", "viz.sink.path"]
        );
        assert_eq!(all.prefixes, ["viz", "viz.sink"]);
        assert_eq!(
            names(&list_parameters(&table, &[], 1)),
            ["seed", "use_sim_time"]
        );
        assert_eq!(
            names(&list_parameters(&table, &[], 2)),
            ["seed", "use_sim_time", "viz.every"]
        );
    }

    #[test]
    fn list_with_a_prefix_gives_the_names_below_it_only() {
        let table = table();
        let below = list_parameters(&table, &["viz".into()], 0);
        assert_eq!(names(&below), ["viz.every", "viz.sink.path"]);
        // rclcpp counts the separator after the prefix: depth 2 is one level below it.
        let one_level = list_parameters(&table, &["viz".into()], 2);
        assert_eq!(names(&one_level), ["viz.every"]);
        let exact = list_parameters(&table, &["seed".into()], 1);
        assert_eq!(names(&exact), ["seed"]);
        // "vi" is not a parent of "viz.every".
        assert!(list_parameters(&table, &["vi".into()], 0).names.is_empty());
    }

    #[test]
    fn get_and_types_report_values_and_not_set_for_unknown_names() {
        let table = table();
        let seed = value_message(lookup(&table, "seed"));
        assert_eq!(seed.type_, ParameterType::PARAMETER_INTEGER as u8);
        assert_eq!(seed.integer_value, 3);
        let path = value_message(lookup(&table, "viz.sink.path"));
        assert_eq!(path.string_value, "a.rrd");
        let unknown = value_message(lookup(&table, "nope"));
        assert_eq!(unknown.type_, ParameterType::PARAMETER_NOT_SET as u8);
        assert_eq!(
            type_code(lookup(&table, "use_sim_time")),
            ParameterType::PARAMETER_BOOL as u8
        );
    }

    #[test]
    fn parameters_are_described_read_only_with_their_descriptions() {
        let table = table();
        let described = describe_parameters(&table, &["viz.every".into(), "nope".into()]);
        assert_eq!(described[0].description, "Seconds between frames");
        assert_eq!(described[0].type_, ParameterType::PARAMETER_DOUBLE as u8);
        assert!(described[0].read_only);
        assert_eq!(described[1].type_, ParameterType::PARAMETER_NOT_SET as u8);
        assert!(!described[1].read_only);
    }

    #[test]
    fn sets_are_refused_with_a_reason_naming_the_parameter() {
        let refused = refusal("lr");
        assert!(!refused.successful);
        assert!(
            refused.reason.starts_with("lr: read-only"),
            "{}",
            refused.reason
        );
    }
}
