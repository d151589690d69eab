//! Parsing the input and its `#[session(...)]` attributes into a [`Container`], collecting every
//! error instead of stopping at the first.

use std::fmt::Display;

use proc_macro2::{TokenStream, TokenTree};
use quote::ToTokens;
use syn::{
    ext::IdentExt, meta::ParseNestedMeta, Attribute, Data, DeriveInput, Fields, Generics, Ident,
    LitStr, Path, Token, Type, Visibility,
};

const CONTAINER_KEYS: &str = "`name`, `backend`, `crate`, `extractor`";
const FIELD_KEYS: &str = "`rename`, `flash`, `default`, `owner`";

/// The errors of one input, reported together.
#[derive(Default)]
pub(crate) struct Errors {
    errors: Vec<syn::Error>,
}

impl Errors {
    pub(crate) fn spanned(&mut self, tokens: impl ToTokens, message: impl Display) {
        self.errors.push(syn::Error::new_spanned(tokens, message));
    }

    fn push(&mut self, error: syn::Error) {
        self.errors.push(error);
    }

    /// All errors as one, or `None` if there were none.
    pub(crate) fn finish(self) -> Option<syn::Error> {
        self.errors.into_iter().reduce(|mut all, next| {
            all.combine(next);
            all
        })
    }
}

/// The struct that derives `SessionData`.
pub(crate) struct Container<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) vis: &'a Visibility,
    pub(crate) generics: &'a Generics,
    /// Whether the input is a struct with named fields (else `fields` is empty).
    pub(crate) is_struct: bool,
    /// The session name: `name = "..."` or the snake_case type name.
    pub(crate) name: String,
    /// The `name = "..."` literal, if given.
    pub(crate) name_lit: Option<LitStr>,
    pub(crate) backend: Option<LitStr>,
    /// The runtime crate's path (`crate = "..."`, default `::actix_typed_session`).
    pub(crate) krate: Path,
    /// The generated extractor's name (`extractor = "..."`), if chosen; else `{Struct}Session`.
    pub(crate) extractor: Option<Ident>,
    pub(crate) fields: Vec<Field<'a>>,
}

/// One field and its attributes.
pub(crate) struct Field<'a> {
    pub(crate) ident: &'a Ident,
    pub(crate) ty: &'a Type,
    /// The field's `///` lines, copied onto its accessors.
    pub(crate) docs: Vec<&'a Attribute>,
    /// The stored key: `rename = "..."` or the field's name.
    pub(crate) key: String,
    pub(crate) rename: Option<LitStr>,
    /// The `flash` keyword, if given.
    pub(crate) flash: Option<Ident>,
    /// The function of `default = "..."`, if given.
    pub(crate) default: Option<Path>,
    /// The `owner` keyword, if given: the field's value is also the session's owner.
    pub(crate) owner: Option<Ident>,
}

impl Field<'_> {
    /// The field's name without `r#`.
    pub(crate) fn name(&self) -> String {
        self.ident.unraw().to_string()
    }

    /// The tokens that chose the field's key, for errors about the key.
    pub(crate) fn key_tokens(&self) -> TokenStream {
        match &self.rename {
            Some(lit) => lit.to_token_stream(),
            None => self.ident.to_token_stream(),
        }
    }
}

impl<'a> Container<'a> {
    pub(crate) fn from_ast(input: &'a DeriveInput, errors: &mut Errors) -> Self {
        let mut name_lit = None;
        let mut backend = None;
        let mut krate = None;
        let mut extractor = None;
        for attr in session_attrs(&input.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let key = key_name(&meta.path);
                match key.as_str() {
                    "name" => {
                        if let Some(lit) = string_value(&meta, errors)? {
                            set_once(&mut name_lit, lit, &meta.path, errors);
                        }
                    }
                    "backend" => {
                        if let Some(lit) = string_value(&meta, errors)? {
                            set_once(&mut backend, lit, &meta.path, errors);
                        }
                    }
                    "crate" => {
                        if let Some(path) = path_value(&meta, errors)? {
                            set_once(&mut krate, path, &meta.path, errors);
                        }
                    }
                    "extractor" => {
                        if let Some(ident) = ident_value(&meta, errors)? {
                            set_once(&mut extractor, ident, &meta.path, errors);
                        }
                    }
                    "rename" | "flash" | "default" | "owner" => {
                        errors.spanned(
                            &meta.path,
                            format_args!(
                                "`{key}` is a field attribute: put it in a #[session(...)] on a \
                                 field, not on the struct"
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    _ => {
                        errors.spanned(
                            &meta.path,
                            format_args!(
                                "unknown session attribute `{key}`; the struct takes \
                                 {CONTAINER_KEYS} (and fields take {FIELD_KEYS})"
                            ),
                        );
                        skip_value(&meta)?;
                    }
                }
                Ok(())
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }

        let fields = match &input.data {
            Data::Struct(data) => match &data.fields {
                Fields::Named(named) => Some(
                    named
                        .named
                        .iter()
                        .map(|field| Field::from_ast(field, errors))
                        .collect(),
                ),
                Fields::Unnamed(unnamed) => {
                    errors.spanned(
                        unnamed,
                        "`SessionData` needs named fields: each field's name is its key in the \
                         session; write `struct Name { field: Type, .. }`",
                    );
                    None
                }
                Fields::Unit => {
                    errors.spanned(
                        &input.ident,
                        "`SessionData` needs a struct with named fields, one per session key; \
                         this unit struct has none",
                    );
                    None
                }
            },
            Data::Enum(data) => {
                errors.spanned(
                    data.enum_token,
                    "`SessionData` can only be derived for a struct with named fields, one per \
                     session key; not for an enum (store the enum in a field instead)",
                );
                None
            }
            Data::Union(data) => {
                errors.spanned(
                    data.union_token,
                    "`SessionData` can only be derived for a struct with named fields, not for \
                     a union",
                );
                None
            }
        };

        Container {
            ident: &input.ident,
            vis: &input.vis,
            generics: &input.generics,
            is_struct: fields.is_some(),
            name: name_lit.as_ref().map_or_else(
                || snake_case(&input.ident.unraw().to_string()),
                LitStr::value,
            ),
            name_lit,
            backend,
            krate: krate.unwrap_or_else(|| syn::parse_quote!(::actix_typed_session)),
            extractor,
            fields: fields.unwrap_or_default(),
        }
    }
}

impl<'a> Field<'a> {
    fn from_ast(field: &'a syn::Field, errors: &mut Errors) -> Self {
        let ident = field.ident.as_ref().expect("named fields have identifiers");
        let mut rename = None;
        let mut flash = None;
        let mut default = None;
        let mut owner = None;
        for attr in session_attrs(&field.attrs) {
            let parsed = attr.parse_nested_meta(|meta| {
                let key = key_name(&meta.path);
                match key.as_str() {
                    "rename" => {
                        if let Some(lit) = string_value(&meta, errors)? {
                            set_once(&mut rename, lit, &meta.path, errors);
                        }
                    }
                    "flash" => flag(&meta, &mut flash, errors)?,
                    "owner" => flag(&meta, &mut owner, errors)?,
                    "default" => {
                        if let Some(path) = path_value(&meta, errors)? {
                            set_once(&mut default, path, &meta.path, errors);
                        }
                    }
                    "name" | "backend" | "crate" | "extractor" => {
                        errors.spanned(
                            &meta.path,
                            format_args!(
                                "`{key}` is a struct attribute: put it in the #[session(...)] \
                                 above the struct, not on a field"
                            ),
                        );
                        skip_value(&meta)?;
                    }
                    _ => {
                        errors.spanned(
                            &meta.path,
                            format_args!(
                                "unknown session attribute `{key}`; fields take {FIELD_KEYS} \
                                 (and the struct takes {CONTAINER_KEYS})"
                            ),
                        );
                        skip_value(&meta)?;
                    }
                }
                Ok(())
            });
            if let Err(error) = parsed {
                errors.push(error);
            }
        }
        Field {
            ident,
            ty: &field.ty,
            docs: field
                .attrs
                .iter()
                .filter(|a| a.path().is_ident("doc"))
                .collect(),
            key: rename
                .as_ref()
                .map_or_else(|| ident.unraw().to_string(), LitStr::value),
            rename,
            flash,
            default,
            owner,
        }
    }
}

fn session_attrs(attrs: &[Attribute]) -> impl Iterator<Item = &Attribute> {
    attrs.iter().filter(|a| a.path().is_ident("session"))
}

fn key_name(path: &Path) -> String {
    match path.get_ident() {
        Some(ident) => ident.unraw().to_string(),
        None => path.to_token_stream().to_string().replace(' ', ""),
    }
}

/// Keeps the first value of an attribute and reports the second where it is written.
fn set_once<T>(slot: &mut Option<T>, value: T, path: &Path, errors: &mut Errors) {
    if slot.is_some() {
        errors.spanned(
            path,
            format_args!(
                "duplicate session attribute `{}`: it is already set; remove one",
                key_name(path)
            ),
        );
    } else {
        *slot = Some(value);
    }
}

/// A keyword without a value, such as `flash`.
fn flag(
    meta: &ParseNestedMeta<'_>,
    slot: &mut Option<Ident>,
    errors: &mut Errors,
) -> syn::Result<()> {
    if !(meta.input.is_empty() || meta.input.peek(Token![,])) {
        let key = key_name(&meta.path);
        errors.spanned(
            &meta.path,
            format_args!("`{key}` takes no value: write `#[session({key})]`"),
        );
        skip_value(meta)?;
    } else if let Some(word) = meta.path.get_ident() {
        set_once(slot, word.clone(), &meta.path, errors);
    }
    Ok(())
}

/// The tokens after `key =`, up to the next top-level comma; `None` (and an error) when the key
/// has no `= value`.
fn raw_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<TokenStream>> {
    if !meta.input.peek(Token![=]) {
        let key = key_name(&meta.path);
        errors.spanned(
            &meta.path,
            format_args!("`{key}` takes a value: write `{key} = \"...\"`"),
        );
        skip_value(meta)?;
        return Ok(None);
    }
    meta.input.parse::<Token![=]>()?;
    let mut tokens = TokenStream::new();
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        tokens.extend([meta.input.parse::<TokenTree>()?]);
    }
    if tokens.is_empty() {
        errors.spanned(&meta.path, "expected a value after `=`");
        return Ok(None);
    }
    Ok(Some(tokens))
}

/// `key = "string"`.
fn string_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<LitStr>> {
    let Some(tokens) = raw_value(meta, errors)? else {
        return Ok(None);
    };
    match syn::parse2::<LitStr>(tokens.clone()) {
        Ok(lit) => Ok(Some(lit)),
        Err(_) => {
            let key = key_name(&meta.path);
            errors.spanned(
                tokens,
                format_args!("`{key}` takes a string: write `{key} = \"...\"`"),
            );
            Ok(None)
        }
    }
}

/// `key = "TypeName"` or `key = TypeName`: an identifier, not a keyword.
fn ident_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<Ident>> {
    let Some(tokens) = raw_value(meta, errors)? else {
        return Ok(None);
    };
    let parsed = match syn::parse2::<LitStr>(tokens.clone()) {
        Ok(lit) => lit.parse::<Ident>(),
        Err(_) => syn::parse2::<Ident>(tokens.clone()),
    };
    match parsed {
        Ok(ident) => Ok(Some(ident)),
        Err(_) => {
            let key = key_name(&meta.path);
            errors.spanned(
                tokens,
                format_args!(
                    "`{key}` takes the name of the type to generate, one identifier: write \
                     `{key} = \"CartAccess\"` or `{key} = CartAccess`"
                ),
            );
            Ok(None)
        }
    }
}

/// `key = "some::path"` or `key = some::path`.
fn path_value(meta: &ParseNestedMeta<'_>, errors: &mut Errors) -> syn::Result<Option<Path>> {
    let Some(tokens) = raw_value(meta, errors)? else {
        return Ok(None);
    };
    let parsed = match syn::parse2::<LitStr>(tokens.clone()) {
        Ok(lit) => lit
            .parse_with(Path::parse_mod_style)
            .or_else(|_| lit.parse::<Path>()),
        Err(_) => syn::parse2::<Path>(tokens.clone()),
    };
    match parsed {
        Ok(path) => Ok(Some(path)),
        Err(_) => {
            let key = key_name(&meta.path);
            errors.spanned(
                tokens,
                format_args!("`{key}` takes a path: write `{key} = \"path::to::item\"`"),
            );
            Ok(None)
        }
    }
}

/// Skips whatever follows a key that is reported as misplaced or unknown.
fn skip_value(meta: &ParseNestedMeta<'_>) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        meta.input.parse::<Token![=]>()?;
    }
    while !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        meta.input.parse::<TokenTree>()?;
    }
    Ok(())
}

/// `UserPrefs` → `user_prefs`, `HTTPState` → `http_state`.
pub(crate) fn snake_case(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c.is_uppercase() {
            let prev = i.checked_sub(1).map(|p| chars[p]);
            let next = chars.get(i + 1);
            let boundary = match prev {
                None | Some('_') => false,
                Some(p) if p.is_lowercase() || p.is_ascii_digit() => true,
                Some(p) => p.is_uppercase() && next.is_some_and(|n| n.is_lowercase()),
            };
            if boundary {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::snake_case;

    #[test]
    fn snake_case_splits_words_and_acronyms() {
        assert_eq!(snake_case("Cart"), "cart");
        assert_eq!(snake_case("UserPrefs"), "user_prefs");
        assert_eq!(snake_case("HTTPState"), "http_state");
        assert_eq!(snake_case("Cart2Go"), "cart2_go");
        assert_eq!(snake_case("already_snake"), "already_snake");
    }
}
