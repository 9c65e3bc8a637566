//! The enumerations of the accounts model, mirroring PostgreSQL enum types.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a user may do. Platform admins belong to no practice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "user_role", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Role {
    PlatformAdmin,
    PracticeAdmin,
    Neurologist,
    Technician,
}

impl Role {
    pub const ALL: [Role; 4] = [
        Role::PlatformAdmin,
        Role::PracticeAdmin,
        Role::Neurologist,
        Role::Technician,
    ];

    /// Roles a practice admin can give to members of their practice.
    pub fn is_practice_role(self) -> bool {
        !matches!(self, Role::PlatformAdmin)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "platform_admin",
            Role::PracticeAdmin => "practice_admin",
            Role::Neurologist => "neurologist",
            Role::Technician => "technician",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Role::PlatformAdmin => "Platform admin",
            Role::PracticeAdmin => "Practice admin",
            Role::Neurologist => "Neurologist",
            Role::Technician => "Technician",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "practice_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum PracticeStatus {
    Active,
    Suspended,
}

/// The disease programme a practice follows by default; it sets the expected
/// interval between scans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "disease_programme", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum Programme {
    /// Multiple sclerosis: typically yearly MRI.
    Ms,
    /// Dementia: typically every one to two years.
    Dementia,
}

impl Programme {
    pub fn default_follow_up_months(self) -> i32 {
        match self {
            Programme::Ms => 12,
            Programme::Dementia => 18,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "user_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum UserStatus {
    Invited,
    Active,
    Deactivated,
}

/// What a series or volume is, for the analysis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "sequence_class", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum SequenceClass {
    T1,
    Flair,
    Other,
}

impl SequenceClass {
    pub fn parse(s: &str) -> Option<SequenceClass> {
        match s.trim().to_ascii_lowercase().as_str() {
            "t1" => Some(SequenceClass::T1),
            "flair" => Some(SequenceClass::Flair),
            "other" => Some(SequenceClass::Other),
            _ => None,
        }
    }
}

/// Where a study is on its way from upload to measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, sqlx::Type, ToSchema)]
#[sqlx(type_name = "study_status", rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum StudyStatus {
    Uploading,
    Queued,
    Ingesting,
    Analysing,
    Done,
    NeedsAttention,
    Failed,
}

impl StudyStatus {
    pub const ALL: [StudyStatus; 7] = [
        StudyStatus::Uploading,
        StudyStatus::Queued,
        StudyStatus::Ingesting,
        StudyStatus::Analysing,
        StudyStatus::Done,
        StudyStatus::NeedsAttention,
        StudyStatus::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            StudyStatus::Uploading => "uploading",
            StudyStatus::Queued => "queued",
            StudyStatus::Ingesting => "ingesting",
            StudyStatus::Analysing => "analysing",
            StudyStatus::Done => "done",
            StudyStatus::NeedsAttention => "needs_attention",
            StudyStatus::Failed => "failed",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            StudyStatus::Uploading => "Uploading",
            StudyStatus::Queued => "Queued",
            StudyStatus::Ingesting => "Ingesting",
            StudyStatus::Analysing => "Analysing",
            StudyStatus::Done => "Done",
            StudyStatus::NeedsAttention => "Needs attention",
            StudyStatus::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<StudyStatus> {
        StudyStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }
}
