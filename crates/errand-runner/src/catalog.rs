//! The jobs directory as a whole: every definition that loaded and every problem, reloaded
//! when a folder is added, edited or removed.
