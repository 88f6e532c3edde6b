; Inno Setup 6 script: the Windows installer of Telemetry Tray, made from the PyInstaller bundle.
;
;   make package                                   (dist\telemetry-tray\, from the spec)
;   iscc /DAppVersion=0.1.0 packaging\windows\telemetry-tray.iss
;
; writes dist\telemetry-tray-<version>-windows-setup.exe. It installs for the current user
; only (no administrator rights): into %LOCALAPPDATA%\Programs\Telemetry Tray, with a Start
; menu entry and, if ticked, start at login. Uninstalling asks whether to keep the person's
; data. tests/shells/test_packaging.py checks the parts that must agree with the program.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z packaging\windows\telemetry-tray.iss
#endif
#define AppName "Telemetry Tray"
; The windowed program (no console window); telemetry-tray.exe beside it is the command line.
#define GuiExe "telemetry-trayw.exe"
; Where platformdirs puts the data, configuration and cache (tray_app/core/paths.py).
#define DataDir "{localappdata}\telemetry-tray"
; The value tray_app.core.platform.autostart.WindowsRunAutostart reads and writes: the Settings
; switch and this installer's task are one and the same setting.
#define RunKey "Software\Microsoft\Windows\CurrentVersion\Run"
#define RunValue "Telemetry Tray"

[Setup]
; Never change AppId: it is how a new version finds the one installed before.
AppId={{0DADBBAB-B772-4CA2-9F7D-14466A45F69C}
AppName={#AppName}
AppVersion={#AppVersion}
AppVerName={#AppName} {#AppVersion}
AppPublisher=The Telemetry Tray developers
AppPublisherURL=https://github.com/telemetry-tray/telemetry-tray
DefaultDirName={autopf}\{#AppName}
DefaultGroupName={#AppName}
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir=..\..\dist
OutputBaseFilename=telemetry-tray-{#AppVersion}-windows-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
; The tray may be running: Restart Manager closes it before files are replaced or removed.
CloseApplications=yes
RestartApplications=no
UninstallDisplayIcon={app}\{#GuiExe}
UninstallDisplayName={#AppName}

[Tasks]
Name: "startatlogin"; Description: "Start {#AppName} when I log in"; GroupDescription: "Start at login:"

[Files]
Source: "..\..\dist\telemetry-tray\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\{#AppName}"; Filename: "{app}\{#GuiExe}"; Comment: "Review the telemetry your programs want to send"
Name: "{group}\Uninstall {#AppName}"; Filename: "{uninstallexe}"

[Registry]
; The same command line as tray_app.core.platform.autostart.run_command_line: the program in quotes.
Root: HKCU; Subkey: "{#RunKey}"; ValueType: string; ValueName: "{#RunValue}"; ValueData: """{app}\{#GuiExe}"""; Flags: uninsdeletevalue; Tasks: startatlogin

[Run]
Filename: "{app}\{#GuiExe}"; Description: "Start {#AppName} now"; Flags: nowait postinstall skipifsilent

[Code]
procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
var
  DataDir: String;
begin
  if CurUninstallStep = usUninstall then
  begin
    // The Settings switch may have written the Run value after installation: the
    // uninstall log does not know it, and it would point at a program that is gone.
    RegDeleteValue(HKEY_CURRENT_USER, '{#RunKey}', '{#RunValue}');
    RegDeleteValue(HKEY_CURRENT_USER, 'Software\Microsoft\Windows\CurrentVersion\Explorer\StartupApproved\Run', '{#RunValue}');
  end;
  if CurUninstallStep = usPostUninstall then
  begin
    DataDir := ExpandConstant('{#DataDir}');
    // Keeping is the default, and what a silent uninstall does: the data holds the
    // decision history, and nothing should be lost by a reinstall or an accident.
    if DirExists(DataDir) and not UninstallSilent() then
      if MsgBox('Also remove your Telemetry Tray data?' + #13#10 + #13#10 +
                'Your registered apps, pending batches, settings and decision history in' + #13#10 +
                DataDir + #13#10 + 'will be deleted. Choose No to keep them for a later install.',
                mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES then
        DelTree(DataDir, True, True, True);
  end;
end;
