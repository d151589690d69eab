//! Checks across the whole input: the session name, the field shapes, keys used twice and
//! generated methods that would collide.

use std::collections::HashMap;

use quote::ToTokens;
use syn::ext::IdentExt;
use syn::{GenericArgument, PathArguments, Type};

use crate::attr::{Container, Errors, Field};

/// Methods every accessor has, with what they do (for collision messages).
pub(crate) const FIXED_METHODS: &[(&str, &str)] = &[
    ("load", "reads the whole struct"),
    ("store", "writes the whole struct"),
    ("renew", "renews the session id"),
    ("purge", "deletes the session"),
    ("clear", "clears the session"),
    ("set_session_expiry", "chooses the session's expiry"),
    ("session_expiry", "returns the session's expiry"),
    ("as_session", "returns the untyped session"),
    ("into_session", "returns the untyped session"),
];

/// Methods an accessor has when one of its fields is the owner.
pub(crate) const OWNER_METHODS: &[(&str, &str)] = &[
    ("owned_sessions", "lists the owner's sessions"),
    ("end_session", "ends one of the owner's sessions"),
    ("end_other_sessions", "ends the owner's other sessions"),
    ("end_all_sessions", "ends all of the owner's sessions"),
];

/// The field that is the session's owner, if any (the first, when the input has errors).
pub(crate) fn owner_field<'c, 'a>(fields: &'c [Field<'a>]) -> Option<&'c Field<'a>> {
    fields.iter().find(|f| f.owner.is_some())
}

/// The methods every accessor of `fields` has, with what they do.
pub(crate) fn fixed_methods(fields: &[Field<'_>]) -> Vec<(&'static str, &'static str)> {
    let mut methods = FIXED_METHODS.to_vec();
    if owner_field(fields).is_some() {
        methods.extend_from_slice(OWNER_METHODS);
    }
    methods
}

pub(crate) fn check(container: &Container<'_>, errors: &mut Errors) {
    if !container.generics.params.is_empty() {
        errors.spanned(
            container.generics,
            "`SessionData` cannot be derived for a generic struct: a session name stores one \
             set of types; derive it on a struct with concrete field types",
        );
    }
    check_name(container, errors);
    if let Some(extractor) = &container.extractor {
        if extractor.unraw() == container.ident.unraw() {
            errors.spanned(
                extractor,
                format_args!(
                    "the extractor cannot be named `{extractor}`: that is the struct deriving \
                     `SessionData`; choose another name, or leave `extractor` out for \
                     `{extractor}Session`"
                ),
            );
        }
    }
    if let Some(backend) = &container.backend {
        if backend.value().is_empty() {
            errors.spanned(
                backend,
                "the backend name is empty: name a backend registered with \
                 `SessionMiddleware::builder(..).backend(name, store)`, or leave `backend` out \
                 for the default backend",
            );
        }
    }
    for field in &container.fields {
        check_flash(field, errors);
    }
    check_owner(&container.fields, errors);
    check_keys(&container.fields, errors);
    check_methods(&container.fields, errors);
}

/// A session name is a cookie name, so it must be an RFC 6265 token.
fn check_name(container: &Container<'_>, errors: &mut Errors) {
    let Err(reason) = token_error(&container.name) else {
        return;
    };
    match &container.name_lit {
        Some(lit) => errors.spanned(
            lit,
            format_args!(
                "session name {:?} cannot be a cookie name: {reason}; choose another \
                 `name = \"...\"`",
                container.name
            ),
        ),
        None => errors.spanned(
            container.ident,
            format_args!(
                "the session name {:?} derived from this type cannot be a cookie name: \
                 {reason}; set one with #[session(name = \"...\")]",
                container.name
            ),
        ),
    }
}

/// Why `name` is not an RFC 6265 cookie-name (an RFC 9110 token), if it is not.
fn token_error(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("it is empty");
    }
    if name.len() > 256 {
        return Err("it is longer than 256 bytes");
    }
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !name.bytes().all(is_tchar) {
        return Err("only ASCII letters, digits and !#$%&'*+-.^_`|~ are allowed");
    }
    Ok(())
}

fn check_flash(field: &Field<'_>, errors: &mut Errors) {
    if field.flash.is_none() {
        return;
    }
    if vec_item(field.ty).is_none() {
        errors.spanned(
            field.ty,
            format_args!(
                "#[session(flash)] needs a `Vec<T>` field: flash messages are a list that \
                 `push_{0}(item)` appends to and `take_{0}()` empties; this field is `{1}`",
                field.name(),
                field.ty.to_token_stream().to_string().replace(' ', ""),
            ),
        );
    }
    if let Some(default) = &field.default {
        errors.spanned(
            default,
            format_args!(
                "`default` does not apply to a flash field: an absent `{}` is an empty list; \
                 remove `default` or `flash`",
                field.name()
            ),
        );
    }
}

/// At most one owner field, and not a flash list.
fn check_owner(fields: &[Field<'_>], errors: &mut Errors) {
    let mut first: Option<&Field<'_>> = None;
    for field in fields {
        let Some(owner) = &field.owner else {
            continue;
        };
        if field.flash.is_some() {
            errors.spanned(
                owner,
                format_args!(
                    "`owner` cannot be combined with `flash`: the owner is one value (the \
                     logged-in user), and `{}` is a list of read-once messages; remove `owner` \
                     or `flash`",
                    field.name()
                ),
            );
        }
        match first {
            Some(first) => errors.spanned(
                owner,
                format_args!(
                    "field `{}` is already the session's owner, and a session has one owner; \
                     remove #[session(owner)] from `{}` or from `{}`",
                    first.name(),
                    first.name(),
                    field.name()
                ),
            ),
            None => first = Some(field),
        }
    }
}

fn check_keys(fields: &[Field<'_>], errors: &mut Errors) {
    let mut owners: HashMap<&str, &Field<'_>> = HashMap::new();
    for field in fields {
        if let Some(first) = owners.get(field.key.as_str()) {
            errors.spanned(
                field.key_tokens(),
                format_args!(
                    "key {:?} is already stored by field `{}`; give one of the fields another \
                     key with #[session(rename = \"...\")]",
                    field.key,
                    first.name()
                ),
            );
        } else {
            owners.insert(&field.key, field);
        }
    }
}

/// The accessor methods generated for `field`, with what each one is.
pub(crate) fn field_methods(field: &Field<'_>) -> Vec<(String, &'static str)> {
    let name = field.name();
    let mut methods = vec![
        (name.clone(), "getter"),
        (format!("set_{name}"), "setter"),
        (format!("remove_{name}"), "remover"),
        (format!("update_{name}"), "updater"),
    ];
    if field.flash.is_some() {
        methods.push((format!("push_{name}"), "push method"));
        methods.push((format!("take_{name}"), "take method"));
    }
    methods
}

fn check_methods(fields: &[Field<'_>], errors: &mut Errors) {
    let mut taken: HashMap<String, String> = fixed_methods(fields)
        .iter()
        .map(|(name, what)| {
            (
                (*name).to_owned(),
                format!("the accessor's own `{name}()` ({what})"),
            )
        })
        .collect();
    for field in fields {
        for (method, kind) in field_methods(field) {
            if let Some(owner) = taken.get(&method) {
                errors.spanned(
                    field.ident,
                    format_args!(
                        "field `{}` would get the {kind} `{method}()`, which is already {owner}; \
                         rename the field and keep its key with #[session(rename = {:?})]",
                        field.name(),
                        field.key,
                    ),
                );
                break;
            }
        }
        for (method, kind) in field_methods(field) {
            taken
                .entry(method)
                .or_insert_with(|| format!("the {kind} of field `{}`", field.name()));
        }
    }
}

/// `T` of `Option<T>` (also `std::option::Option<T>`), recognised by name.
pub(crate) fn option_inner(ty: &Type) -> Option<&Type> {
    single_generic(ty, "Option", &["option"])
}

/// `T` of `Vec<T>` (also `std::vec::Vec<T>`), recognised by name.
pub(crate) fn vec_item(ty: &Type) -> Option<&Type> {
    single_generic(ty, "Vec", &["vec"])
}

fn single_generic<'a>(ty: &'a Type, name: &str, module: &[&str]) -> Option<&'a Type> {
    let path = match ty {
        Type::Path(path) if path.qself.is_none() => &path.path,
        Type::Group(group) => return single_generic(&group.elem, name, module),
        Type::Paren(paren) => return single_generic(&paren.elem, name, module),
        _ => return None,
    };
    let last = path.segments.last()?;
    let prefix: Vec<String> = path
        .segments
        .iter()
        .rev()
        .skip(1)
        .map(|s| s.ident.to_string())
        .collect();
    let prefix_ok = match prefix.as_slice() {
        [] => true,
        [m, krate] => {
            module.contains(&m.as_str()) && ["std", "core", "alloc"].contains(&krate.as_str())
        }
        _ => false,
    };
    if last.ident != name || !prefix_ok {
        return None;
    }
    match &last.arguments {
        PathArguments::AngleBracketed(args) if args.args.len() == 1 => match &args.args[0] {
            GenericArgument::Type(inner) => Some(inner),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_option_and_vec_by_name() {
        let ty: Type = syn::parse_quote!(Option<u64>);
        assert!(option_inner(&ty).is_some());
        let ty: Type = syn::parse_quote!(::std::option::Option<u64>);
        assert!(option_inner(&ty).is_some());
        let ty: Type = syn::parse_quote!(Vec<String>);
        assert!(vec_item(&ty).is_some() && option_inner(&ty).is_none());
        let ty: Type = syn::parse_quote!(my::Vec<String>);
        assert!(vec_item(&ty).is_none());
        let ty: Type = syn::parse_quote!(String);
        assert!(vec_item(&ty).is_none());
    }

    #[test]
    fn tokens() {
        assert!(token_error("cart").is_ok());
        assert!(token_error("__Host-cart").is_ok());
        for bad in ["", "my cart", "a;b", "café"] {
            assert!(token_error(bad).is_err(), "{bad:?}");
        }
    }
}
