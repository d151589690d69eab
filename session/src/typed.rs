//! Typed sessions: the [`SessionData`] trait that `#[derive(SessionData)]` implements, the
//! registration that [`build`](crate::SessionMiddlewareBuilder::build) checks, and the hidden
//! helpers the generated code calls.
//!
//! The typed layer adds no storage logic: every generated accessor is a call to
//! [`Session::get`](crate::Session::get), [`Session::insert`](crate::Session::insert) or
//! [`Session::remove`](crate::Session::remove) under the field's key.

use std::{
    any::TypeId,
    collections::{hash_map::Entry, HashMap},
};

use actix_web::FromRequest;

use crate::{BuildError, SessionError};

/// A struct whose fields live as keys of one named session.
///
/// Implemented by `#[derive(SessionData)]` (see the derive for its attributes); do not
/// implement it by hand. The derive also generates the extractor [`Accessor`](Self::Accessor),
/// named after the struct with a `Session` suffix.
///
/// Register each type on the middleware with
/// [`SessionMiddlewareBuilder::register`](crate::SessionMiddlewareBuilder::register), so that a
/// missing backend or two types that disagree on a key fail `build()` instead of a request.
///
/// ```
/// use actix_typed_session::{CookieStore, Key, SessionData, SessionMiddleware};
///
/// #[derive(SessionData)]
/// #[session(name = "prefs")]
/// struct Prefs {
///     /// The visitor's language.
///     lang: Option<String>,
/// }
///
/// assert_eq!(<Prefs as SessionData>::NAME, "prefs");
/// assert_eq!(<Prefs as SessionData>::BACKEND, None);
///
/// let middleware = SessionMiddleware::builder(Key::generate())
///     .backend("cookie", CookieStore::default())
///     .register::<Prefs>()
///     .build();
/// assert!(middleware.is_ok());
/// ```
pub trait SessionData: Sized + 'static {
    /// The generated extractor with one getter, setter and remover per field
    /// (`PrefsSession` for `Prefs`).
    type Accessor: FromRequest<Error = SessionError> + 'static;

    /// The session's name, which is also its cookie's name unless configured otherwise.
    const NAME: &'static str;

    /// The backend the session lives on, or `None` for the session's configured backend (or
    /// the middleware's default backend).
    const BACKEND: Option<&'static str>;

    /// The stored keys and their types.
    #[doc(hidden)]
    const FIELDS: &'static [__private::Field];
}

/// A [`SessionData`] type registered on the builder, checked by `build()`.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    type_id: TypeId,
    pub(crate) type_name: &'static str,
    pub(crate) name: &'static str,
    pub(crate) backend: Option<&'static str>,
    fields: &'static [__private::Field],
}

impl Registration {
    pub(crate) fn of<T: SessionData>() -> Self {
        Self {
            type_id: TypeId::of::<T>(),
            type_name: std::any::type_name::<T>(),
            name: T::NAME,
            backend: T::BACKEND,
            fields: T::FIELDS,
        }
    }
}

/// Drops repeated registrations of one type, keeping the first.
pub(crate) fn dedup(registered: &[Registration]) -> Vec<&Registration> {
    let mut seen = Vec::new();
    registered
        .iter()
        .filter(|r| {
            let new = !seen.contains(&r.type_id);
            seen.push(r.type_id);
            new
        })
        .collect()
}

/// Fails when two registered types store different types under one key of one session.
pub(crate) fn check_keys(registered: &[&Registration]) -> Result<(), BuildError> {
    // (session, key) -> (type that claimed it, stored type id, stored type name)
    let mut owners: HashMap<(&str, &str), (&str, TypeId, &str)> = HashMap::new();
    for data in registered {
        for field in data.fields {
            let stored = ((field.type_id)(), (field.type_name)());
            match owners.entry((data.name, field.key)) {
                Entry::Vacant(slot) => {
                    slot.insert((data.type_name, stored.0, stored.1));
                }
                Entry::Occupied(slot) => {
                    let (first, first_id, first_type) = *slot.get();
                    if first_id != stored.0 {
                        return Err(BuildError::TypedKeyConflict {
                            session: data.name.to_owned(),
                            key: field.key.to_owned(),
                            first,
                            first_type,
                            second: data.type_name,
                            second_type: stored.1,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

/// Support for the code `#[derive(SessionData)]` generates. Not a public API: it changes
/// without notice.
#[doc(hidden)]
pub mod __private {
    use std::{any::TypeId, future::Future, pin::Pin};

    use serde::{de::DeserializeOwned, Serialize};

    pub use crate::{Expiry, Session, SessionData, SessionError, SessionHandle, SessionInfo};
    pub use actix_web::{dev::Payload, FromRequest, HttpRequest};
    pub use core::{
        any::type_name,
        borrow::Borrow,
        clone::Clone,
        fmt,
        ops::FnOnce,
        option::Option::{self, None, Some},
        result::Result::{self, Err, Ok},
        unreachable,
    };
    pub use std::vec::Vec;

    pub use crate::{
        __require_backend_cookie as require_backend_cookie,
        __require_backend_memory as require_backend_memory,
    };

    use crate::Sessions;

    /// One stored key of a [`SessionData`] type: its key and the type stored under it (the `T`
    /// of an `Option<T>` field, whose `None` is stored as an absent key).
    #[derive(Debug)]
    pub struct Field {
        pub key: &'static str,
        pub type_id: fn() -> TypeId,
        pub type_name: fn() -> &'static str,
    }

    /// `TypeId::of`, as a function pointer usable in a `const`.
    pub fn type_id<T: ?Sized + 'static>() -> TypeId {
        TypeId::of::<T>()
    }

    /// The future of a generated extractor.
    pub type Open<T> = Pin<Box<dyn Future<Output = Result<T, SessionError>>>>;

    /// Opens `T`'s session on its backend and wraps it in `T`'s accessor.
    pub fn open<T: SessionData>(
        req: &HttpRequest,
        wrap: fn(Session) -> T::Accessor,
    ) -> Open<T::Accessor> {
        let sessions = Sessions::from_request_parts(req);
        Box::pin(async move {
            let sessions = sessions?;
            let session = match T::BACKEND {
                Some(backend) => sessions.open_on(T::NAME, backend).await?,
                None => sessions.open(T::NAME).await?,
            };
            Ok(wrap(session))
        })
    }

    /// Reads `key` as a `T`, or `default()` when absent. A value of another type is
    /// [`SessionError::WrongType`], never a panic or a silent default.
    pub fn get<T: DeserializeOwned>(
        session: &Session,
        key: &str,
        default: impl FnOnce() -> T,
    ) -> Result<T, SessionError> {
        match session.get::<T>(key) {
            Ok(Some(value)) => Ok(value),
            Ok(None) => Ok(default()),
            Err(SessionError::Deserialize {
                session,
                key,
                source,
            }) => Err(SessionError::WrongType {
                session,
                key,
                expected: type_name::<T>(),
                source,
            }),
            Err(other) => Err(other),
        }
    }

    /// `Default`, with advice for session fields that lack it.
    #[diagnostic::on_unimplemented(
        message = "the session field's type `{Self}` does not implement `Default`",
        label = "a field without a stored value takes its default, and `{Self}` has none",
        note = "derive or implement `Default` for `{Self}`, make the field an `Option<{Self}>`, \
                or name a function with #[session(default = \"path::to::function\")]"
    )]
    pub trait FieldDefault {
        fn field_default() -> Self;
    }

    impl<T: Default> FieldDefault for T {
        fn field_default() -> Self {
            T::default()
        }
    }

    /// Reads `key` as a `T`, or `T::default()` when absent.
    pub fn get_or_default<T: DeserializeOwned + FieldDefault>(
        session: &Session,
        key: &str,
    ) -> Result<T, SessionError> {
        get(session, key, T::field_default)
    }

    /// Sets `key` to `value`.
    pub fn set<T: Serialize + ?Sized>(
        session: &Session,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        session.insert(key, value)
    }

    /// Sets `key` to the value of `Some`, or removes it for `None`.
    pub fn set_option<T: Serialize>(
        session: &Session,
        key: &str,
        value: Option<&T>,
    ) -> Result<(), SessionError> {
        match value {
            Some(value) => session.insert(key, value),
            None => {
                session.remove(key);
                Ok(())
            }
        }
    }

    /// Sets a flash list; an empty list removes the key.
    pub fn set_flash<T: Serialize>(
        session: &Session,
        key: &str,
        items: &[T],
    ) -> Result<(), SessionError> {
        if items.is_empty() {
            session.remove(key);
            Ok(())
        } else {
            session.insert(key, items)
        }
    }

    /// Removes `key`.
    pub fn remove(session: &Session, key: &str) {
        session.remove(key);
    }

    /// Appends `item` to the list stored under `key`.
    pub fn push<T: Serialize + DeserializeOwned>(
        session: &Session,
        key: &str,
        item: T,
    ) -> Result<(), SessionError> {
        let mut items: Vec<T> = get(session, key, Vec::new)?;
        items.push(item);
        session.insert(key, items)
    }

    /// Returns the list stored under `key` and removes it. A list of another type is an error
    /// and stays.
    pub fn take<T: DeserializeOwned>(session: &Session, key: &str) -> Result<Vec<T>, SessionError> {
        let items: Vec<T> = get(session, key, Vec::new)?;
        session.remove(key);
        Ok(items)
    }

    /// Runs `write`; if it fails, the session's data, owner and pending changes are as before
    /// it.
    pub fn all_or_nothing(
        session: &Session,
        write: impl FnOnce() -> Result<(), SessionError>,
    ) -> Result<(), SessionError> {
        let (entries, changes, owner, valid_from) = {
            let state = session.state();
            (
                state.entries.clone(),
                state.changes.clone(),
                state.owner.clone(),
                state.valid_from,
            )
        };
        let result = write();
        if result.is_err() {
            let mut state = session.state();
            state.entries = entries;
            state.changes = changes;
            state.owner = owner;
            state.valid_from = valid_from;
        }
        result
    }

    /// The text an owner field's value ties the session to: its `Display`.
    #[diagnostic::on_unimplemented(
        message = "the session owner field's type `{Self}` does not implement `std::fmt::Display`",
        label = "the owner field's value, as text, is the session's owner, and `{Self}` has no text",
        note = "implement `Display` for `{Self}` (writing the user's id, say), or make the owner \
                a field whose type has it, such as a `String` or an integer id"
    )]
    pub trait OwnerText {
        fn owner_text(&self) -> String;
    }

    impl<T: fmt::Display + ?Sized> OwnerText for T {
        fn owner_text(&self) -> String {
            self.to_string()
        }
    }

    /// Sets the owner field `key` to `value` and ties the session to `value`'s text: both, or
    /// (on error) neither.
    pub fn set_owner_field<T: Serialize + OwnerText + ?Sized>(
        session: &Session,
        key: &str,
        value: &T,
    ) -> Result<(), SessionError> {
        all_or_nothing(session, || {
            session.set_owner(value.owner_text())?;
            session.insert(key, value)
        })
    }

    /// [`set_owner_field`] for `Some`; for `None`, removes the key and unties the session.
    pub fn set_owner_option<T: Serialize + OwnerText>(
        session: &Session,
        key: &str,
        value: Option<&T>,
    ) -> Result<(), SessionError> {
        match value {
            Some(value) => set_owner_field(session, key, value),
            None => {
                remove_owner_field(session, key);
                Ok(())
            }
        }
    }

    /// Removes the owner field `key` and unties the session from its owner.
    pub fn remove_owner_field(session: &Session, key: &str) {
        session.clear_owner();
        session.remove(key);
    }
}

// A `#[session(backend = "cookie")]` or `"memory"` names a built-in backend by its feature:
// the derive calls these, which are empty when the feature is on and a compile error naming
// the feature when it is off.

#[cfg(feature = "cookie")]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_backend_cookie {
    () => {};
}

#[cfg(not(feature = "cookie"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_backend_cookie {
    () => {
        ::core::compile_error!(
            "backend \"cookie\" is the built-in cookie backend, whose cargo feature is off: \
             enable feature `cookie` of actix-typed-session (or register your own store under \
             another name)"
        );
    };
}

#[cfg(feature = "memory")]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_backend_memory {
    () => {};
}

#[cfg(not(feature = "memory"))]
#[doc(hidden)]
#[macro_export]
macro_rules! __require_backend_memory {
    () => {
        ::core::compile_error!(
            "backend \"memory\" is the built-in memory backend, whose cargo feature is off: \
             enable feature `memory` of actix-typed-session (or register your own store under \
             another name)"
        );
    };
}
