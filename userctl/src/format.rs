//! Output formats that several commands share. It sits below both the
//! command line ([`crate::cli`]) and the commands ([`crate::control`]), so
//! neither has to import the other.

/// Output format of `decode` and of the Windows read commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// Text for a person.
    Human,
    /// JSON.
    Json,
}
