//! Which topic of a bag feeds which input of the learner: found by type, the nodes' default
//! topic names breaking ties, a topic named by the user winning over both; every other topic
//! with the reason it is not used.

use serde::Serialize;

use crate::msgs::types;
use crate::read::TopicInfo;

/// An input of the learner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// `sensor_msgs/Image` or `CompressedImage`.
    Camera,
    /// `sensor_msgs/JointState`.
    JointStates,
    /// `sensor_msgs/Imu`.
    Imu,
    /// `nav_msgs/Odometry`.
    Odometry,
    /// `geometry_msgs/Twist` or `TwistStamped`: the commands the robot drove with.
    Commands,
}

impl Role {
    /// Every role, in display order.
    pub const ALL: [Role; 5] = [
        Role::Camera,
        Role::JointStates,
        Role::Imu,
        Role::Odometry,
        Role::Commands,
    ];

    /// The role's name, as the nodes' topics and the CLI flags call it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Camera => "camera",
            Role::JointStates => "joint_states",
            Role::Imu => "imu",
            Role::Odometry => "odom",
            Role::Commands => "cmd_vel",
        }
    }

    /// The topic the nodes subscribe to by default (relative: a bag's namespace may precede it).
    fn default_topics(self) -> &'static [&'static str] {
        match self {
            Role::Camera => &["camera/image_raw", "camera/image_raw/compressed"],
            Role::JointStates => &["joint_states"],
            Role::Imu => &["imu/data"],
            Role::Odometry => &["odom"],
            Role::Commands => &["cmd_vel"],
        }
    }

    /// The role a message type can play.
    pub fn of_type(type_name: &str) -> Option<Role> {
        match type_name {
            types::IMAGE | types::COMPRESSED_IMAGE => Some(Role::Camera),
            types::JOINT_STATE => Some(Role::JointStates),
            types::IMU => Some(Role::Imu),
            types::ODOMETRY => Some(Role::Odometry),
            types::TWIST | types::TWIST_STAMPED => Some(Role::Commands),
            _ => None,
        }
    }
}

/// Topics named by the user, one per role (as the nodes' remaps name them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicChoice {
    /// The camera topic.
    pub camera: Option<String>,
    /// The joint states topic.
    pub joint_states: Option<String>,
    /// The IMU topic.
    pub imu: Option<String>,
    /// The odometry topic.
    pub odometry: Option<String>,
    /// The command topic.
    pub commands: Option<String>,
}

impl TopicChoice {
    fn get(&self, role: Role) -> Option<&str> {
        match role {
            Role::Camera => self.camera.as_deref(),
            Role::JointStates => self.joint_states.as_deref(),
            Role::Imu => self.imu.as_deref(),
            Role::Odometry => self.odometry.as_deref(),
            Role::Commands => self.commands.as_deref(),
        }
    }
}

/// The chosen topic of each role (indexes into the bag's topics) and why the others are not
/// used.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Inputs {
    /// Chosen topic per role, in [`Role::ALL`] order.
    pub chosen: Vec<(Role, usize)>,
    /// Every topic not chosen, with the reason.
    pub unused: Vec<(usize, String)>,
}

impl Inputs {
    /// The topic feeding `role`.
    pub fn topic(&self, role: Role) -> Option<usize> {
        self.chosen
            .iter()
            .find_map(|&(r, topic)| (r == role).then_some(topic))
    }

    /// The role topic `index` feeds.
    pub fn role_of(&self, index: usize) -> Option<Role> {
        self.chosen
            .iter()
            .find_map(|&(role, topic)| (topic == index).then_some(role))
    }
}

/// Normalises a topic name for comparison: one leading `/`.
fn absolute(name: &str) -> String {
    format!("/{}", name.trim_start_matches('/'))
}

/// How well `name` matches the nodes' default topic of `role`: 2 exactly, 1 in a namespace.
fn name_score(role: Role, name: &str) -> u8 {
    let name = absolute(name);
    role.default_topics()
        .iter()
        .map(|default| {
            if name == format!("/{default}") {
                2
            } else if name.ends_with(&format!("/{default}")) {
                1
            } else {
                0
            }
        })
        .max()
        .unwrap_or(0)
}

/// Chooses the topic of each role among `topics`. A role named in `choice` must exist with a
/// type that can play it; otherwise the role's single candidate is taken, or among several the
/// one with the nodes' default name (a raw image over its compressed twin). Ground-truth topics
/// are never inputs. Errors say which flag settles an ambiguity.
pub fn choose(topics: &[TopicInfo], choice: &TopicChoice) -> Result<Inputs, String> {
    let mut inputs = Inputs::default();
    for role in Role::ALL {
        let candidates: Vec<usize> = topics
            .iter()
            .enumerate()
            .filter(|(_, t)| {
                Role::of_type(&t.type_name) == Some(role) && !t.name.contains("ground_truth")
            })
            .map(|(i, _)| i)
            .collect();
        let picked = if let Some(wanted) = choice.get(role) {
            let wanted = absolute(wanted);
            let Some(index) = topics.iter().position(|t| absolute(&t.name) == wanted) else {
                return Err(format!(
                    "--{}-topic {wanted}: the bag has no such topic",
                    role.name().replace('_', "-")
                ));
            };
            if Role::of_type(&topics[index].type_name) != Some(role) {
                return Err(format!(
                    "--{}-topic {wanted}: its type {} cannot be the {} input",
                    role.name().replace('_', "-"),
                    topics[index].type_name,
                    role.name()
                ));
            }
            Some(index)
        } else {
            match candidates.as_slice() {
                [] => None,
                [only] => Some(*only),
                many => {
                    let best = many
                        .iter()
                        .map(|&i| name_score(role, &topics[i].name))
                        .max()
                        .unwrap_or(0);
                    let mut top: Vec<usize> = many
                        .iter()
                        .copied()
                        .filter(|&i| name_score(role, &topics[i].name) == best)
                        .collect();
                    if role == Role::Camera && top.len() > 1 {
                        // One camera as raw and as image_transport's compressed twin: raw.
                        let raw: Vec<usize> = top
                            .iter()
                            .copied()
                            .filter(|&i| topics[i].type_name == types::IMAGE)
                            .collect();
                        if raw.len() == 1
                            && top.iter().all(|&i| {
                                i == raw[0]
                                    || topics[i].name
                                        == format!("{}/compressed", topics[raw[0]].name)
                            })
                        {
                            top = raw;
                        }
                    }
                    match top.as_slice() {
                        [one] => Some(*one),
                        _ => {
                            let names: Vec<&str> =
                                many.iter().map(|&i| topics[i].name.as_str()).collect();
                            return Err(format!(
                                "several topics could be the {} input ({}): choose one with --{}-topic",
                                role.name(),
                                names.join(", "),
                                role.name().replace('_', "-")
                            ));
                        }
                    }
                }
            }
        };
        if let Some(index) = picked {
            inputs.chosen.push((role, index));
        }
    }
    for (index, topic) in topics.iter().enumerate() {
        if inputs.role_of(index).is_some() {
            continue;
        }
        let reason = match Role::of_type(&topic.type_name) {
            Some(_) if topic.name.contains("ground_truth") => {
                "ground truth: a label for `eval --bag`, never an input".to_owned()
            }
            Some(role) => format!(
                "another {} topic is used (choose with --{}-topic)",
                role.name(),
                role.name().replace('_', "-")
            ),
            None => match topic.type_name.as_str() {
                types::CAMERA_INFO => "not needed: images are fitted to the model by size".into(),
                types::CLOCK => "not needed: stamps come from the message headers".into(),
                "" => "no type recorded for it".into(),
                other => format!("{other} is not an input of the learner"),
            },
        };
        inputs.unused.push((index, reason));
    }
    if topic_encoding_mismatch(topics, &inputs) {
        return Err("an input topic is not CDR-serialized".into());
    }
    Ok(inputs)
}

fn topic_encoding_mismatch(topics: &[TopicInfo], inputs: &Inputs) -> bool {
    inputs
        .chosen
        .iter()
        .any(|&(_, i)| topics[i].encoding != "cdr")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(name: &str, type_name: &str) -> TopicInfo {
        TopicInfo {
            name: name.into(),
            type_name: type_name.into(),
            encoding: "cdr".into(),
            count: 10,
        }
    }

    #[test]
    fn inputs_are_found_by_type_with_default_names_breaking_ties() {
        let topics = vec![
            topic("/camera/image_raw", types::IMAGE),
            topic("/camera/image_raw/compressed", types::COMPRESSED_IMAGE),
            topic("/odom", types::ODOMETRY),
            topic("/ground_truth/odom", types::ODOMETRY),
            topic("/cmd_vel", types::TWIST_STAMPED),
            topic("/camera/camera_info", types::CAMERA_INFO),
            topic("/tf", "tf2_msgs/msg/TFMessage"),
        ];
        let inputs = choose(&topics, &TopicChoice::default()).expect("unambiguous");
        assert_eq!(
            inputs.topic(Role::Camera),
            Some(0),
            "raw over its compressed twin"
        );
        assert_eq!(
            inputs.topic(Role::Odometry),
            Some(2),
            "never the ground truth"
        );
        assert_eq!(inputs.topic(Role::Commands), Some(4));
        assert_eq!(inputs.topic(Role::Imu), None);
        assert_eq!(inputs.unused.len(), 4);
        let compressed = TopicChoice {
            camera: Some("camera/image_raw/compressed".into()),
            ..TopicChoice::default()
        };
        assert_eq!(
            choose(&topics, &compressed).map(|i| i.topic(Role::Camera)),
            Ok(Some(1))
        );
    }

    #[test]
    fn two_cameras_are_an_error_that_names_the_flag() {
        let topics = vec![
            topic("/front/image", types::IMAGE),
            topic("/rear/image", types::IMAGE),
        ];
        let error = choose(&topics, &TopicChoice::default()).expect_err("ambiguous");
        assert!(error.contains("--camera-topic"), "{error}");
        let wrong = TopicChoice {
            camera: Some("/nope".into()),
            ..TopicChoice::default()
        };
        assert!(choose(&topics, &wrong).is_err());
    }
}
